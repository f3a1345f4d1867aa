"""Request and response bodies (Pydantic), kept apart from the ORM models."""
