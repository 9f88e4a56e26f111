DROP TABLE progress;
DROP TABLE applied_change;
DROP TABLE event_count;
DROP TABLE shop_status;
DROP TABLE stock;
