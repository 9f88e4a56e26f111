package consume

import "errors"

// ErrUnknownTable is returned by handlers for a change of a table they do
// not consume.
var ErrUnknownTable = errors.New("a change of a table this consumer does not consume")

// ErrGroupActive is returned by PlanReset, CommitPlan and Rebuild while the
// consumer group has members: their own commits would undo the reset, and
// they would apply changes under a rebuild.
var ErrGroupActive = errors.New("the consumer group has active members: stop them first")

// ErrNoCommittedOffset is returned by PlanReset for a shift of partitions
// that have no committed offset to shift, as kafka-consumer-groups
// --shift-by refuses them.
var ErrNoCommittedOffset = errors.New("cannot shift partitions without a committed offset")

// ErrTruncated is returned by Rebuild when a topic no longer starts at
// offset 0 (retention or a deletion removed its first messages): a state
// rebuilt from what is left would lack the changes removed, so the rebuild
// refuses unless forced.
var ErrTruncated = errors.New("the topics no longer hold every change from offset 0")
