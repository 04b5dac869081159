# Rules cloudftpd's config needs (cloudftpd firewall). TCP only.
variable "security_group_id" {
  type        = string
  description = "The security group of the cloudftpd instance"
}

resource "aws_vpc_security_group_ingress_rule" "cloudftpd_ingress_21_ipv4" {
  security_group_id = var.security_group_id
  description       = "cloudftpd listener[0] control (0.0.0.0:21)"
  ip_protocol       = "tcp"
  from_port         = 21
  to_port           = 21
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "cloudftpd_ingress_50000_50100_ipv4" {
  security_group_id = var.security_group_id
  description       = "cloudftpd listener[0] passive ports"
  ip_protocol       = "tcp"
  from_port         = 50000
  to_port           = 50100
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "cloudftpd_ingress_9121_ipv4" {
  security_group_id = var.security_group_id
  description       = "cloudftpd metrics (0.0.0.0:9121), private networks only"
  ip_protocol       = "tcp"
  from_port         = 9121
  to_port           = 9121
  cidr_ipv4         = "10.0.0.0/8"
}

resource "aws_vpc_security_group_ingress_rule" "cloudftpd_ingress_9121_ipv4_2" {
  security_group_id = var.security_group_id
  description       = "cloudftpd metrics (0.0.0.0:9121), private networks only"
  ip_protocol       = "tcp"
  from_port         = 9121
  to_port           = 9121
  cidr_ipv4         = "172.16.0.0/12"
}

resource "aws_vpc_security_group_ingress_rule" "cloudftpd_ingress_9121_ipv4_3" {
  security_group_id = var.security_group_id
  description       = "cloudftpd metrics (0.0.0.0:9121), private networks only"
  ip_protocol       = "tcp"
  from_port         = 9121
  to_port           = 9121
  cidr_ipv4         = "192.168.0.0/16"
}
