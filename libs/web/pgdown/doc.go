// Package pgdown holds the tests of libs/web's answer to a database that is out of reach (web.Unavailable)
// against a real Postgres and pgx's own errors. They live apart from package web's tests so that
// importing libs/web never makes a module (the gateway's) depend on the driver, not even for go.sum.
package pgdown
