"""recship.features"""
