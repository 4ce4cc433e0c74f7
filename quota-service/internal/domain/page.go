package domain

import "limen/libs/failure"

// Paging of the admin's list, as the user list pages.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
)

// ValidPage refuses a page the list cannot answer, naming the query parameter.
func ValidPage(limit, offset int) error {
	if limit < 1 || limit > MaxPageSize {
		return failure.InvalidField("limit", "Query parameter 'limit' must be between 1 and 200")
	}
	if offset < 0 {
		return failure.InvalidField("offset", "Query parameter 'offset' must be 0 or more")
	}
	return nil
}
