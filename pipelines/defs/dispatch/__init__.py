"""The dispatch domain: the allocation of every wave and the forward warehouses' van rounds."""
