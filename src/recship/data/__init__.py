"""recship.data"""
