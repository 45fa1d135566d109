"""recship.predict"""
