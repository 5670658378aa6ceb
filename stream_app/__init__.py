"""Stream processor: order events in, per-customer RFM in Redis, segment changes out."""
