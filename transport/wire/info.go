package wire

// InfoSections are the sections of the info op's reply (PROTOCOL.md, "The info reply"), in the
// order a reply with every section writes them; a request names one of them in any case.
var InfoSections = []string{"server", "clients", "memory", "persistence", "keyspace", "stats"}
