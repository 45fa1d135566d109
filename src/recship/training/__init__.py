"""recship.training"""
