"""recship.tools"""
