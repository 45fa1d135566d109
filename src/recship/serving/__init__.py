"""recship.serving"""
