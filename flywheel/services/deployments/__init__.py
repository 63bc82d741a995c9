"""services/deployments"""
