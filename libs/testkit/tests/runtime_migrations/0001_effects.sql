-- What the test handler of consumer_runtime.rs changes: one row per event it
-- applied, so applying one twice breaks the primary key.
CREATE TABLE effects (
    message_key TEXT NOT NULL,
    seq BIGINT NOT NULL,
    member TEXT NOT NULL,
    PRIMARY KEY (message_key, seq)
);
