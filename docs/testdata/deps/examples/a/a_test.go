// An example's test importing another example: refused too.
package main

import (
	_ "example.com/m/cht/chttest"
	_ "example.com/m/examples/b"
)
