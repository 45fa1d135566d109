"""recship.testing"""
