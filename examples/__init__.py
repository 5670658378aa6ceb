"""Examples of programs that use the service from outside: copy one and adapt it."""
