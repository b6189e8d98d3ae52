'use strict';

// Assorted assembly shapes that a CDK Pipelines app does not produce:
// environment-agnostic stacks, stages nested in stages, a classic
// aws-codepipeline Pipeline, custom-resource singleton functions, Lambda in a
// VPC, Lambda@Edge, already-compliant resources and a metadata opt-out.
// Synthesized by ../synth.sh into ./cdk.out, which the tests use as a fixture.

const cdk = require('aws-cdk-lib');
const s3 = require('aws-cdk-lib/aws-s3');
const s3deploy = require('aws-cdk-lib/aws-s3-deployment');
const kms = require('aws-cdk-lib/aws-kms');
const iam = require('aws-cdk-lib/aws-iam');
const ec2 = require('aws-cdk-lib/aws-ec2');
const logs = require('aws-cdk-lib/aws-logs');
const lambda = require('aws-cdk-lib/aws-lambda');
const codebuild = require('aws-cdk-lib/aws-codebuild');
const codepipeline = require('aws-cdk-lib/aws-codepipeline');
const actions = require('aws-cdk-lib/aws-codepipeline-actions');
const cloudfront = require('aws-cdk-lib/aws-cloudfront');
const origins = require('aws-cdk-lib/aws-cloudfront-origins');
const cr = require('aws-cdk-lib/custom-resources');

const TOOLING = { account: '111111111111', region: 'eu-west-1' };
const DEV = { account: '222222222222', region: 'eu-west-1' };
const DEV_US_EAST_1 = { account: '222222222222', region: 'us-east-1' };
const PROD_ACCOUNT = '444444444444';

function inlineFunction(scope, id, props = {}) {
  return new lambda.Function(scope, id, {
    runtime: lambda.Runtime.NODEJS_22_X,
    handler: 'index.handler',
    code: lambda.Code.fromInline(`exports.handler = async () => ({ from: ${JSON.stringify(id)} });`),
    ...props,
  });
}

// No `env`: account and region resolve to AWS::AccountId / AWS::Region.
class EnvironmentAgnosticStack extends cdk.Stack {
  constructor(scope, id, props) {
    super(scope, id, props);
    new s3.Bucket(this, 'Bucket');
    inlineFunction(this, 'Function');
    new codebuild.Project(this, 'Project', {
      buildSpec: codebuild.BuildSpec.fromObject({
        version: '0.2',
        phases: { build: { commands: ['make test'] } },
      }),
    });
  }
}

// Stage inside a Stage: produces an assembly nested in another assembly.
class InnerStage extends cdk.Stage {
  constructor(scope, id, props) {
    super(scope, id, props);
    const stack = new cdk.Stack(this, 'Workload');
    new s3.Bucket(stack, 'Bucket');
    inlineFunction(stack, 'Function');
  }
}

class OuterStage extends cdk.Stage {
  constructor(scope, id, props) {
    super(scope, id, props);
    new InnerStage(this, 'Inner');
  }
}

// A hand-built aws-codepipeline Pipeline (not CDK Pipelines) whose last stage
// deploys with roles in the production account.
class ClassicPipelineStack extends cdk.Stack {
  constructor(scope, id, props) {
    super(scope, id, props);

    const sourceBucket = new s3.Bucket(this, 'SourceBucket', { versioned: true });
    const sourceOutput = new codepipeline.Artifact('Source');
    const buildOutput = new codepipeline.Artifact('BuildOutput');

    const project = new codebuild.PipelineProject(this, 'BuildProject', {
      buildSpec: codebuild.BuildSpec.fromObject({
        version: '0.2',
        phases: { build: { commands: ['npm ci', 'npm run build'] } },
        artifacts: { files: ['staging.template.json', 'production.template.json'] },
      }),
    });

    const prodActionRole = iam.Role.fromRoleArn(
      this,
      'ProductionActionRole',
      `arn:aws:iam::${PROD_ACCOUNT}:role/example-app-pipeline-deploy-role`,
      { mutable: false },
    );
    const prodDeploymentRole = iam.Role.fromRoleArn(
      this,
      'ProductionDeploymentRole',
      `arn:aws:iam::${PROD_ACCOUNT}:role/example-app-cfn-exec-role`,
      { mutable: false },
    );

    new codepipeline.Pipeline(this, 'Pipeline', {
      crossAccountKeys: true,
      stages: [
        {
          stageName: 'Source',
          actions: [
            new actions.S3SourceAction({
              actionName: 'Source',
              bucket: sourceBucket,
              bucketKey: 'source.zip',
              output: sourceOutput,
            }),
          ],
        },
        {
          stageName: 'Build',
          actions: [
            new actions.CodeBuildAction({
              actionName: 'Build',
              project,
              input: sourceOutput,
              outputs: [buildOutput],
            }),
          ],
        },
        {
          stageName: 'Staging',
          actions: [
            new actions.CloudFormationCreateUpdateStackAction({
              actionName: 'Deploy',
              stackName: 'example-app-staging',
              templatePath: buildOutput.atPath('staging.template.json'),
              adminPermissions: true,
            }),
          ],
        },
        {
          stageName: 'Production',
          actions: [
            new actions.CloudFormationCreateUpdateStackAction({
              actionName: 'Deploy',
              stackName: 'example-app-production',
              templatePath: buildOutput.atPath('production.template.json'),
              adminPermissions: false,
              role: prodActionRole,
              deploymentRole: prodDeploymentRole,
            }),
          ],
        },
      ],
    });
  }
}

// Constructs that add singleton provider functions to the stack.
class CustomResourcesStack extends cdk.Stack {
  constructor(scope, id, props) {
    super(scope, id, props);

    new cr.AwsCustomResource(this, 'ReadParameter', {
      onUpdate: {
        service: 'SSM',
        action: 'getParameter',
        parameters: { Name: '/example/app/config' },
        physicalResourceId: cr.PhysicalResourceId.of('example-app-config'),
      },
      policy: cr.AwsCustomResourcePolicy.fromSdkCalls({
        resources: cr.AwsCustomResourcePolicy.ANY_RESOURCE,
      }),
    });

    const site = new s3.Bucket(this, 'SiteBucket');
    new s3deploy.BucketDeployment(this, 'DeploySite', {
      sources: [s3deploy.Source.data('hello.txt', 'hello')],
      destinationBucket: site,
    });

    inlineFunction(this, 'RetainedLogsFunction', {
      logRetention: logs.RetentionDays.ONE_WEEK,
    });
  }
}

// A function that is already attached to an (imported) VPC.
class VpcFunctionStack extends cdk.Stack {
  constructor(scope, id, props) {
    super(scope, id, props);

    const vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
      vpcId: 'vpc-0a1b2c3d4e5f60718',
      availabilityZones: ['eu-west-1a', 'eu-west-1b'],
      privateSubnetIds: ['subnet-0a1b2c3d4e5f60718', 'subnet-1a1b2c3d4e5f60718'],
      privateSubnetRouteTableIds: ['rtb-0a1b2c3d4e5f60718', 'rtb-1a1b2c3d4e5f60718'],
    });
    const securityGroup = ec2.SecurityGroup.fromSecurityGroupId(
      this,
      'SecurityGroup',
      'sg-0a1b2c3d4e5f60718',
    );

    inlineFunction(this, 'VpcFunction', {
      vpc,
      securityGroups: [securityGroup],
    });
  }
}

// Lambda@Edge: a CloudFront distribution with a viewer-request function.
class EdgeStack extends cdk.Stack {
  constructor(scope, id, props) {
    super(scope, id, props);

    const content = new s3.Bucket(this, 'ContentBucket');

    const viewerRequest = new lambda.Function(this, 'ViewerRequest', {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromInline(
        'exports.handler = async (event) => event.Records[0].cf.request;',
      ),
    });

    new cloudfront.Distribution(this, 'Distribution', {
      defaultBehavior: {
        origin: origins.S3BucketOrigin.withOriginAccessControl(content),
        edgeLambdas: [
          {
            functionVersion: viewerRequest.currentVersion,
            eventType: cloudfront.LambdaEdgeEventType.VIEWER_REQUEST,
          },
        ],
      },
    });
  }
}

// Resources that already meet the hardening rules.
class CompliantStack extends cdk.Stack {
  constructor(scope, id, props) {
    super(scope, id, props);

    const accessLogs = new s3.Bucket(this, 'AccessLogsBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      versioned: true,
    });

    const dataKey = new kms.Key(this, 'DataKey', { enableKeyRotation: true });

    new s3.Bucket(this, 'DataBucket', {
      versioned: true,
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: dataKey,
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: 'data/',
    });

    new kms.Key(this, 'SigningKey', {
      keySpec: kms.KeySpec.RSA_2048,
      keyUsage: kms.KeyUsage.SIGN_VERIFY,
    });

    new kms.Key(this, 'MacKey', {
      keySpec: kms.KeySpec.HMAC_256,
      keyUsage: kms.KeyUsage.GENERATE_VERIFY_MAC,
    });
  }
}

// A bucket that opts out of one rule through resource metadata.
class OptOutStack extends cdk.Stack {
  constructor(scope, id, props) {
    super(scope, id, props);

    const website = new s3.Bucket(this, 'WebsiteBucket');
    website.node.defaultChild.addMetadata('cdk-harden', {
      skip: [
        {
          id: 'bucket-logging',
          reason: 'public website bucket; access is logged by CloudFront',
        },
      ],
    });
  }
}

const app = new cdk.App({
  // Creation stack traces would record absolute source paths of the machine
  // that ran the synthesis; leave them out so the assembly is reproducible.
  context: { 'aws:cdk:disable-creation-stack-traces': true },
});

new EnvironmentAgnosticStack(app, 'EnvironmentAgnosticStack');
new OuterStage(app, 'Outer', { env: DEV });
new ClassicPipelineStack(app, 'ClassicPipelineStack', { env: TOOLING });
new CustomResourcesStack(app, 'CustomResourcesStack', { env: DEV });
new VpcFunctionStack(app, 'VpcFunctionStack', { env: DEV });
new EdgeStack(app, 'EdgeStack', { env: DEV_US_EAST_1 });
new CompliantStack(app, 'CompliantStack', { env: DEV });
new OptOutStack(app, 'OptOutStack', { env: DEV });

app.synth();
