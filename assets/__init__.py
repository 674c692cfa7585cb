"""Sift package."""
