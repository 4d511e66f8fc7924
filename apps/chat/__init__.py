"""RAG chat over PostgreSQL/pgvector with citations, streaming and document-level access control."""
