module limen/docs

go 1.26.0
