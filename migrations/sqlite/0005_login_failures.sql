-- Failed logins, counted in the database so that every process serving it
-- shares one count. A counter is a kind ('user': a username from one
-- address, 'address', 'account': a username from anywhere) and what it
-- counts; its window opens at its first failure and lasts the throttle's
-- window.
CREATE TABLE login_failures (
    counter      TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    window_start INTEGER NOT NULL,
    failures     INTEGER NOT NULL,
    PRIMARY KEY (counter, subject)
) WITHOUT ROWID;

-- Finished windows are deleted by when they began.
CREATE INDEX login_failures_by_window ON login_failures (window_start);
