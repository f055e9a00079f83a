"""Who may talk to a cluster: its secrets, certificates and TLS contexts."""
