"""recship.export"""
