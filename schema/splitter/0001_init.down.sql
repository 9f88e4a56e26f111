DROP TABLE IF EXISTS claim, held_return, order_route;
