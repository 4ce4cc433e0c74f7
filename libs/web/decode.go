package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/go-playground/validator/v10"
	"github.com/gofiber/fiber/v2"
)

var validate = func() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			return f.Name
		}
		return name
	})
	return v
}()

// DecodeJSON reads the request body into dst and checks its `validate` tags. Unknown fields are ignored,
// so clients may send more than a route reads; everything else wrong is a 400 that names the field, or
// 415 for a non-JSON content type.
func DecodeJSON(c *fiber.Ctx, dst any) error {
	if ct := c.Get(fiber.HeaderContentType); ct != "" && !strings.HasPrefix(strings.ToLower(ct), fiber.MIMEApplicationJSON) {
		return NewError(http.StatusUnsupportedMediaType, "Content-Type must be application/json")
	}
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return NewError(http.StatusBadRequest, "Request body is required")
	}
	if err := decodeSingleValue(body, dst); err != nil {
		return err
	}
	return Validate(dst)
}

func decodeSingleValue(body []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(dst); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return &Error{Code: http.StatusBadRequest, Message: fmt.Sprintf("Invalid value for field '%s': expected %s", typeErr.Field, jsonKind(typeErr.Type))}
		}
		return &Error{Code: http.StatusBadRequest, Message: "Invalid JSON body", Detail: err.Error()}
	}
	if _, err := dec.Token(); err != io.EOF {
		return NewError(http.StatusBadRequest, "Invalid JSON body")
	}
	return nil
}

// Validate checks dst's `validate` tags and answers 400 naming the first failing field by its JSON name.
func Validate(dst any) error {
	err := validate.Struct(dst)
	var invalid validator.ValidationErrors
	if err == nil || !errors.As(err, &invalid) {
		return err
	}
	fe := invalid[0]
	return NewError(http.StatusBadRequest, fieldMessage(fe))
}

func fieldMessage(fe validator.FieldError) string {
	field := fe.Field()
	switch fe.Tag() {
	case "required":
		return fmt.Sprintf("Field '%s' is required", field)
	case "min":
		if fe.Kind() == reflect.String {
			return fmt.Sprintf("Field '%s' must be at least %s characters", field, fe.Param())
		}
		return fmt.Sprintf("Field '%s' must be at least %s", field, fe.Param())
	case "max":
		if fe.Kind() == reflect.String {
			return fmt.Sprintf("Field '%s' must be at most %s characters", field, fe.Param())
		}
		return fmt.Sprintf("Field '%s' must be at most %s", field, fe.Param())
	case "oneof":
		return fmt.Sprintf("Field '%s' must be one of: %s", field, strings.ReplaceAll(fe.Param(), " ", ", "))
	}
	return fmt.Sprintf("Field '%s' is invalid", field)
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	}
	return "object"
}
