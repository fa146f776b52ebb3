"""The storage benchmark for site admins: access patterns, readers and the sweep over them."""
