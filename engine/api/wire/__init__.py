"""Docker JSON shapes <-> domain records, one module per area."""
