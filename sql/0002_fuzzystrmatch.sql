-- Levenshtein distance for "did you mean" on mistyped EQ-/WO- numbers:
-- trigram similarity treats 000012 as one word and ranks badly there.
-- fuzzystrmatch is a trusted extension, like pg_trgm.
CREATE EXTENSION IF NOT EXISTS fuzzystrmatch;
