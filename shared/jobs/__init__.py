"""Jobs: the public shapes and the state transitions both the API and the worker use."""
