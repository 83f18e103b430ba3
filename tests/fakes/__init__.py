"""Stand-ins for outside services that tests cannot reach, served on real local sockets."""
