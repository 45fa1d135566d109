"""recship.cli"""
