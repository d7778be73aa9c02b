-- Deletions committed whose rows are still being removed. Deleting a space or a neuron commits
-- one row here (and its write sequence), so the delete is durable at once, however large; the
-- writer then removes the rows a few thousand at a time between other writes, so a large delete
-- never holds up other spaces' writes. Start-up skips what is listed here and resumes the work.
CREATE TABLE purges (
    space  TEXT NOT NULL,
    -- The neuron whose rows go, or '' (never a valid name) for the whole space.
    neuron TEXT NOT NULL,
    PRIMARY KEY (space, neuron)
) STRICT;
