DROP TABLE IF EXISTS stage_claim, file_progress, pending_return, events, order_return, purchase_history,
  account_transaction, user, shop_state, shop, good;
