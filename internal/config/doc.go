// Package config loads and validates rempart's YAML configuration. A bad
// config is refused with an error that names the file, the line and the field.
package config
