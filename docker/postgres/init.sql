-- One database per service (SPEC §1). Each service's `migrate` job creates its own schema.
-- The postgres image runs this only when the data volume is empty (first start); after changing
-- it, recreate the volume: `docker compose down -v`.
CREATE DATABASE orders;
CREATE DATABASE payments;
