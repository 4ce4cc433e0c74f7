package main

import (
	"reflect"
	"testing"
)

func TestCheck(t *testing.T) {
	pkgs := map[string]pkg{
		"limen/x/internal/domain":      {ImportPath: "limen/x/internal/domain", Imports: []string{"errors", "limen/libs/pure"}},
		"limen/x/internal/app":         {ImportPath: "limen/x/internal/app", Imports: []string{"limen/x/internal/domain", "limen/libs/web"}},
		"limen/x/internal/app/vm":      {ImportPath: "limen/x/internal/app/vm", Imports: []string{"github.com/jackc/pgx/v5"}},
		"limen/x/internal/adapters/pg": {ImportPath: "limen/x/internal/adapters/pg", Imports: []string{"github.com/jackc/pgx/v5"}},
		"limen/x/internal/application": {ImportPath: "limen/x/internal/application", Imports: []string{"github.com/gofiber/fiber/v2"}},
		"limen/libs/pure":              {ImportPath: "limen/libs/pure", Imports: []string{"fmt"}},
		"limen/libs/web":               {ImportPath: "limen/libs/web", Imports: []string{"github.com/gofiber/fiber/v2"}},
		"errors":                       {ImportPath: "errors", Standard: true},
		"fmt":                          {ImportPath: "fmt", Standard: true},
	}
	got := Check(pkgs)
	want := []string{
		"limen/x/internal/app -> limen/libs/web -> github.com/gofiber/fiber/v2",
		"limen/x/internal/app/vm -> github.com/jackc/pgx/v5",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestCheck_StandardOnly(t *testing.T) {
	pkgs := map[string]pkg{
		"limen/libs/failure":  {ImportPath: "limen/libs/failure", Imports: []string{"errors", "limen/libs/web"}},
		"limen/libs/contract": {ImportPath: "limen/libs/contract", Imports: []string{"net/url", "github.com/google/uuid"}},
		"limen/libs/web":      {ImportPath: "limen/libs/web", Imports: []string{"github.com/gofiber/fiber/v2"}},
		"limen/libs/pure":     {ImportPath: "limen/libs/pure", Imports: []string{"github.com/google/uuid"}},
		"errors":              {ImportPath: "errors", Standard: true},
		"net/url":             {ImportPath: "net/url", Standard: true},
	}
	got := Check(pkgs)
	want := []string{
		"limen/libs/contract -> github.com/google/uuid",
		"limen/libs/failure -> limen/libs/web",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}
