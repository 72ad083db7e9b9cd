"""`firelane demo`: emulated nodes on a virtual bus, the real gateway and a broker, a story."""
