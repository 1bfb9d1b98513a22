// Package reliability holds the broker's reliability and security suite:
// hostile input, database and provider faults, races, shutdown under load
// and several replicas on one database. Everything lives in its tests; they
// run the real broker (in-process or the compiled binary) against real
// PostgreSQL and the provider emulator over real HTTP. docs/reliability.md
// lists what is tested, with the figures.
package reliability
