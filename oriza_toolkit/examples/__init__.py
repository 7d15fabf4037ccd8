"""Example projects that use the toolkit; nothing in the library depends on them."""
