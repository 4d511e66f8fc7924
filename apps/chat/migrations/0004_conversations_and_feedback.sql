-- Chat history and answer feedback (history.py). Each conversation belongs to one user: the caller's
-- Entra object id with AUTH_MODE=app_service, else the one local user; every query names the user.
CREATE TABLE conversations (
    id uuid PRIMARY KEY,
    user_id text NOT NULL,
    title text NOT NULL,
    -- How many messages it holds: appending reserves positions under the row lock (history.py).
    message_count integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversations_user_updated_idx ON conversations (user_id, updated_at DESC);

CREATE TABLE conversation_messages (
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    position integer NOT NULL,
    role text NOT NULL CHECK (role IN ('user', 'assistant')),
    content text NOT NULL,
    -- An answer's context as the chat answer had it (data_points, thoughts); NULL for questions.
    context jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, position)
);

-- A rating keeps its own copy of the answer and its citations, so it stays reviewable after the
-- conversation is deleted.
CREATE TABLE feedback (
    id bigserial PRIMARY KEY,
    user_id text NOT NULL,
    conversation_id uuid REFERENCES conversations (id) ON DELETE SET NULL,
    message_index integer NOT NULL,
    rating text NOT NULL CHECK (rating IN ('up', 'down')),
    comment text NOT NULL DEFAULT '',
    question text NOT NULL,
    answer text NOT NULL,
    citations jsonb NOT NULL,
    answered_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- As for collections (0003): the tables belong to the Entra administrators' group, whichever of the
-- app and the ingestion job ran this.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'azure_pg_admin') THEN
        ALTER TABLE conversations OWNER TO azure_pg_admin;
        ALTER TABLE conversation_messages OWNER TO azure_pg_admin;
        ALTER TABLE feedback OWNER TO azure_pg_admin;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON conversations, conversation_messages, feedback TO azure_pg_admin;
    GRANT USAGE, SELECT ON SEQUENCE feedback_id_seq TO azure_pg_admin;
END
$$;
