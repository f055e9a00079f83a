"""One node at run time: the trio shell around the core, its state machine and its client endpoint."""
