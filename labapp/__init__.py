"""Worker Tier Lab: the Elastic Beanstalk worker tier and SQS, run on your own machine."""

__version__ = "0.1.0"
