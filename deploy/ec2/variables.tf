variable "region" {
  type    = string
  default = "eu-west-1" # storage.region of cloudftpd.toml
}

variable "bucket" {
  type    = string
  default = "partner-exchange" # storage.bucket of cloudftpd.toml
}

variable "prefix" {
  type    = string
  default = "ftp/" # storage.prefix of cloudftpd.toml
}

variable "vpc_id" {
  type = string
}

variable "subnet_id" {
  type        = string
  description = "A public subnet (a route to an internet gateway)"
}

variable "ami_id" {
  type        = string
  description = "A Debian or Ubuntu AMI (the user data installs a .deb)"
}

variable "instance_type" {
  type    = string
  default = "t3.small"
}

variable "package_url" {
  type        = string
  description = "Where the instance downloads the cloudftpd .deb (packaging/build.sh)"
}
