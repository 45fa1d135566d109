"""recship.models"""
