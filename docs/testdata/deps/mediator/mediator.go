// Package mediator imports cht: refused.
package mediator

import _ "example.com/m/cht"
