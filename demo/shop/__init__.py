"""A tiny shop: the code under test of escope's demo suite."""
