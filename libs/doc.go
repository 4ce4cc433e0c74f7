// Package libs is the root of LIMEN's shared code: only what two or more services use lives here.
package libs
