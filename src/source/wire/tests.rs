//! The decoder over hand-built token streams, fed in every split across packets.
