"""Detection: was this audio marked by this gateway, where, and (to those entitled) by which request."""
