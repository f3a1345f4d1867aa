"""The TabPFN upstream: the adapter (only importer of tabpfn_client), its config and errors."""
