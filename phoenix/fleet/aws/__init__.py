"""The AWS path of a fleet: EC2 instances (Provider) behind an ELBv2 target group (Traffic).

botocore is imported only inside functions and constructors (phoenix.fleet.aws.client), so that
importing this package costs a lab fleet nothing.
"""
