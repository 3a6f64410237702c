"""Physical relations the product enforces: carbon balance and sign conventions, units, drivers."""
