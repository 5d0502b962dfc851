"""Client formats: wire Structs mirroring each API's JSON and pure converters to and from the
canonical model. No I/O here."""
