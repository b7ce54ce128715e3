# The variables every phoenix module declares (infra/README.md): phoenix passes exactly these.

variable "fleet" {
  description = "Name of the fleet these servers belong to (the tag phoenix:fleet)."
  type        = string
}

variable "servers" {
  description = "Server name => the AMI id it runs and the generation it belongs to."
  type = map(object({
    image      = string
    generation = number
  }))
}

variable "authorized_key" {
  description = "The operator's public key line, given to cloud-init for root's authorized_keys."
  type        = string
}

# Declared by infra/lxd, so declared here too (every phoenix module takes the same variables);
# unused on AWS.

variable "profiles" {
  description = "LXD only (the lab's profiles): unused on AWS, declared for the common contract."
  type        = list(string)
  default     = ["default"]
}

variable "keyed_by_image" {
  description = "LXD only (servers whose image writes the key from their config): unused on AWS, where cloud-init writes it, declared for the common contract."
  type        = list(string)
  default     = []
}

variable "lxd_config_dir" {
  description = "LXD only (the lab's lxc client configuration): unused on AWS, declared for the common contract."
  type        = string
  default     = null
}

# AWS-only settings: phoenix gives them from [fleets.NAME.aws] through phoenix.auto.tfvars.json.

variable "region" {
  description = "The AWS region of the fleet, like eu-west-1 ([fleets.NAME.aws] region)."
  type        = string
  default     = "eu-west-1"
}

variable "target_group_arn" {
  description = "ARN of the ELBv2 target group (target type instance) in front of the fleet ([fleets.NAME.aws] target_group_arn): every server is attached to it."
  type        = string
}

variable "subnet_id" {
  description = "The subnet the servers are launched in; null: the default subnet of the region's default VPC."
  type        = string
  default     = null
}

variable "security_group_ids" {
  description = "Security groups of every server (they must let the load balancer reach the server port and phoenix reach SSH)."
  type        = list(string)
  default     = []
}

variable "instance_type" {
  description = "The EC2 instance type of every server."
  type        = string
  default     = "t3.micro"
}

variable "server_port" {
  description = "The port the target group sends traffic to on each server."
  type        = number
  default     = 80
}
