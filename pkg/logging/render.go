package logging

import (
	"encoding/json"
	"fmt"
)

func renderValue(v any) string {
	if b, err := json.Marshal(v); err == nil {
		return string(b)
	}
	return fmt.Sprintf("%+v", v)
}
